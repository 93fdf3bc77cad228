"""Paper reproductions: a miniature study per paper and its claims, each a statistic with a
threshold fixed before the run, checked and reported as PASS, FAIL or INCONCLUSIVE
(`transferlab-reproduce`)."""
