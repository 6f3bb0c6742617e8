from tuneflow.cli import main

main()
