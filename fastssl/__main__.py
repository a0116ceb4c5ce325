from fastssl.cli import main

main()
