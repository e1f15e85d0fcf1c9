"""One module per resource; each exposes ``router`` (an APIRouter under ``/v1``)."""
