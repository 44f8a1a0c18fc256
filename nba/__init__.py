"""The `nba` command line and the synthetic demo retailer."""
