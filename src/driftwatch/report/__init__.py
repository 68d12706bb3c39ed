"""The HTML report: per-segment charts of the segments that alerted (``driftwatch report``)."""
