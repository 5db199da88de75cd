import sys

from hmr_serve.testing.main import main

sys.exit(main(sys.argv[1:]))
