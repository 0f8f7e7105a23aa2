"""Whether LiteLLM's price of 0.0 is a price: a `litellm.Router` adds each deployment's model to LiteLLM's price table
(`litellm.model_cost`) whether or not it has a price, as an entry with no `*_cost_per_*` key, and from then on
LiteLLM prices every call of that model 0.0 where, for a model it does not know, it gives no price at all. lmscope
never reports an unknown price as $0 (README): such a 0.0 is unknown. A free model's entry says 0 in so many words
(`input_cost_per_token: 0`), and stays priced."""

from __future__ import annotations

import sys
from typing import Any


def zero_is_unpriced(model: str, provider: str | None) -> bool:
    """True when LiteLLM's table has entries for `model` (as `provider/model` or bare) and none of them has a price."""
    table = getattr(sys.modules.get("litellm"), "model_cost", None)
    if not isinstance(table, dict):
        return False
    keys = (f"{provider}/{model}", model) if provider else (model,)
    entries = [entry for entry in (table.get(key) for key in keys) if isinstance(entry, dict)]
    return bool(entries) and not any(_prices(entry) for entry in entries)


def _prices(entry: dict[str, Any]) -> bool:
    return any("cost_per" in key and value is not None for key, value in entry.items())
