"""Kind `redis`: client (reaching it), capture (BGSAVE), place (restore), verify (facts, readiness, drill)."""
