"""Ember's dashboard: a web page of the cluster, served by a process of its own on the head
(``python -m ember.dashboard``, started by ``init()`` and ``ember start --head``).

Its own process, so that neither its crash nor a slow page can touch the node; it reads the
cluster through the state API (the control store, which asks the nodes), holds only the last
minutes' samples for its charts, and loads its web server only once a browser (or a
Prometheus scrape) first connects: until then it is a small Python process that samples.
"""
