"""What the edge tells its operator besides the audit: Prometheus metrics on a listener of their
own, and the fields its log lines carry (README "Operating it").

    labels.py    BoundedLabel: the values a label may take, capped, the rest counted as "other"
    metrics.py   EdgeMetrics: counters and histograms updated once per request, at its end, from
                 its audit record; and what is read only when scraped (machines, streams,
                 queues, tunnel round trips and traffic, the audit backlog)
    listener.py  serve_metrics: ``GET /metrics`` on its own address, never the public one
    logs.py      the request a log line was written for (a context variable the API sets), and
                 the filter that puts its id, tenant, key and machine on the line
"""
