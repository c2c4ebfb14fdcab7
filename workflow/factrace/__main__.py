from factrace.cli import main

raise SystemExit(main())
