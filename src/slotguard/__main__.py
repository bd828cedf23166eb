from slotguard.cli import main

main()
