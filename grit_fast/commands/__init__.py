"""Command-line subcommands of grit-fast: each module has add_arguments(parser) and run(args)."""
