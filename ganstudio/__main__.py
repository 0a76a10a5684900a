from ganstudio.cli import main

raise SystemExit(main())
