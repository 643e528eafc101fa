"""Pure decisions over plain data, "now" passed in: planning, diff, and later retention,
schedule, alerts and RPO. Nothing here does I/O or reads a clock (a layers contract and a
banned-API lint rule hold that); jobs/ asks these modules what to do.
"""
