"""The image index file: ENTRYPOINT and CMD of images whose pods set no ``command``.

It is what an operator writes (YAML or JSON), so it is validated with pydantic and every error
names the image and field. Example::

    nginx:1.27:
      entrypoint: ["/docker-entrypoint.sh"]
      cmd: ["nginx", "-g", "daemon off;"]
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError, model_validator

from leoflow.agent_inject import ImageEntrypoint


class ImageIndexError(ValueError):
    pass


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entrypoint: list[str] = []
    cmd: list[str] = []

    @model_validator(mode="after")
    def _not_empty(self) -> _Entry:
        if not self.entrypoint and not self.cmd:
            raise ValueError("needs an entrypoint or a cmd")
        return self


class _Index(RootModel[dict[str, _Entry]]):
    pass


def load(path: Path) -> dict[str, ImageEntrypoint]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ImageIndexError(f"{path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ImageIndexError(f"{path}: not YAML: {err}") from None
    try:
        index = _Index.model_validate(raw or {})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ImageIndexError(f"{path}: {problems}") from None
    return {image: ImageEntrypoint(tuple(e.entrypoint), tuple(e.cmd)) for image, e in index.root.items()}
