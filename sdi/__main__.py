from sdi.cli import main

main()
