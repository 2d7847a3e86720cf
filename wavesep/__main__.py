from wavesep.cli import main

raise SystemExit(main())
