from tuneflow.cli.app import main

main()
