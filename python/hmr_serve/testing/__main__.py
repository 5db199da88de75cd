import sys

from hmr_serve.testing.command import main

sys.exit(main(sys.argv[1:]))
