from grit_fast.cli import main

raise SystemExit(main())
