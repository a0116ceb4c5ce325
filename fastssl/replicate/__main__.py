"""`python -m fastssl.replicate` = `fastssl replicate` (works before the command is registered)."""
from fastssl.cli_replicate import replicate

if __name__ == "__main__":
    replicate(prog_name="fastssl replicate")
