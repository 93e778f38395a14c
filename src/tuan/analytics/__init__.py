"""Read side: KPI queries, projections and statistical models (LTV, A/B tests, formation odds)."""
