"""Marketing: what was spent on each acquisition channel (渠道投放), for channel ROI."""
