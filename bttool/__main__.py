"""Allow `python -m bttool`."""
from bttool.cli import entry

if __name__ == "__main__":
    entry()
