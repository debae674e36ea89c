"""Source: reading Wawp. The HTTP client (``wawp``), one request budget per run
(``pace``), the paginated, churn-safe crawl (``crawl``) and the LID map (``lids``)."""
