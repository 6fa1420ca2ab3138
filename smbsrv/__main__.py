import sys

from smbsrv.cli import main

sys.exit(main())
