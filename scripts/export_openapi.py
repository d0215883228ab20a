"""Write the app's OpenAPI document to openapi/openapi.json (run after changing the API)."""

import json
from pathlib import Path

from service.main import create_app

OUT = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def render() -> str:
    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
