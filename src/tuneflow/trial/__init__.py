"""The trial side: the public API a training loop calls (``api``), the job that runs any task as a trial
(``job``), the running trial on the console and in its log file (``progress``), and tuneflow's own app, an
architecture trained over its data's folds (``arch_task``)."""
