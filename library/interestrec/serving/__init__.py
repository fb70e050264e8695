"""Online serving: the durable fresh-event store, request/response schemas and the Ray Serve app.

``interestrec.serving.store`` and ``interestrec.serving.schemas`` are plain Python; only
``interestrec.serving.app`` imports Ray Serve (``serve run interestrec.serving.app:build_app``).
"""
