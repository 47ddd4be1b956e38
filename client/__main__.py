import sys

from client.bench import main

sys.exit(main())
