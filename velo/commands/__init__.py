"""One module per ``velo`` subcommand, each with ``add_parser(subparsers)``."""
