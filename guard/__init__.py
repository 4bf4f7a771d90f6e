"""Guard mode: the synchronous verdict service (``sentinel guard``). A guarded inference node sends
each output here before delivery and gets pass/fail, a 0-100 score and every rubric check back.
HTTP in app.py, micro-batching onto the CLIP encoder in batcher.py, the per-request work in
judge.py; the rubric and its checks are pure code in sentinel/. The service stores nothing."""
