"""The web app: ``analyzer`` (limits, the one entry to the model, figures), ``queue`` (bounded analysis
queue shared by page and API), ``ui`` (the Gradio page), ``server`` (FastAPI: page + ``POST /api/classify``;
``serve`` runs it). ``musicgenre serve`` starts it; ``pip install 'musicgenre[web]'``."""
