"""The bad-input suite, by kind of input: overrides, files, environment, subcommands, trainers, secrets."""
