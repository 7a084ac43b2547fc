"""Pictures: :mod:`.samples` draws predicted and gt boxes on the original image beside the reasoning,
with an HTML gallery (``grit-fast viz``, Pillow only); :mod:`.curves` plots training curves from
``metrics.jsonl`` (``grit-fast plot``, matplotlib)."""
