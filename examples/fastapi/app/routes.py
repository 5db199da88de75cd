"""HTTP routes of the example service."""

from __future__ import annotations

from typing import Annotated

import hmr_serve
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from . import model

router = APIRouter()


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(ge=0)
    tags: list[str] = []


class StoredItem(Item):
    id: int


# Kept across edits of this file, like a database would be. The items stay valid for the
# response model after a reload: as long as its fields are unchanged, StoredItem stays the same
# class (its methods take the new code), so items made before the edit are still StoredItems.
_items: list[StoredItem] = hmr_serve.keep("items", list)


@router.get("/")
async def hello() -> dict[str, object]:
    return {"message": "hello from the hmr-serve FastAPI example", "model_load_s": model.LOAD_TIME}


@router.get("/predict")
async def predict(text: Annotated[str, Query(min_length=1)]) -> dict[str, object]:
    return {"text": text, **model.predict(text)}


@router.post("/items", status_code=201)
async def create_item(item: Item) -> StoredItem:
    stored = StoredItem(id=len(_items) + 1, **item.model_dump())
    _items.append(stored)
    return stored


@router.get("/items")
async def list_items() -> list[StoredItem]:
    return _items
