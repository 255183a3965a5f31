import sys

from deepgen.cli import main

sys.exit(main())
