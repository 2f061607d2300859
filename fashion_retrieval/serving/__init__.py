"""Search as a service (docs/serving.md): :mod:`.service` answers queries with a
:class:`~fashion_retrieval.search.retriever.Retriever` loaded once, :mod:`.app` puts it behind HTTP
(FastAPI) with the web page of ``static/``, :mod:`.schemas` describes the JSON, :mod:`.spec` is what
the command hands its workers (light: no search stack). Needs the ``serve`` extra
(fastapi, uvicorn, python-multipart)."""
