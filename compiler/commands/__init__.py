"""One module per ``quantgate`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``.

Commands turn arguments into ``compiler.api`` calls and results into an exit code; they hold no
pipeline logic. Heavy modules are imported inside ``run`` so ``--help`` stays fast.
"""
