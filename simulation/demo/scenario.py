"""The demo's world: the support desk of Northwind Outfitters, an outdoor-clothing shop.

Everything here is invented and labelled so. The app is the shop's support assistant, on
`gpt-4o` through the OpenAI SDK; the team is moving it to `claude-sonnet-4-5`. A request is one
of five kinds, each drawn with its share of traffic:

- `faq` (35%, half streamed): a customer question with two or three facts a right answer holds
  ("30 days", "a free return label");
- `extract` (25%): JSON mode, the order number, email and issue out of a customer message;
- `tool` (20%): a question that needs the `lookup_order` tool;
- `borderline` (15%): a harmless question that sounds alarming ("how do I kill the sync
  process"), the kind a cautious model refuses;
- `label` (5%): one word, the sentiment of a review.

A `Topic` carries what the simulated models and the simulated judge both need: the facts a
right answer states, the wrong value a worse answer states instead. The judge reads the
answers' text for those facts; it never sees which variant a model drew.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["faq", "extract", "tool", "borderline", "label"]

SYSTEM = (
    "You are the support assistant of Northwind Outfitters, an outdoor-clothing shop. "
    "Answer the customer briefly and accurately."
)
SHARES: tuple[tuple[Kind, float], ...] = (
    ("faq", 0.35),
    ("extract", 0.25),
    ("tool", 0.20),
    ("borderline", 0.15),
    ("label", 0.05),
)
ORDER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order's status and delivery date by its order number.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "e.g. NW-48213"}},
            "required": ["order_id"],
        },
    },
}


@dataclass(frozen=True, slots=True)
class Topic:
    """A question and what a right answer to it says.

    `facts` are phrases a right answer contains; `wrong` maps a fact to the mistaken value a
    worse answer states in its place. `primary` and `candidate` are the two models' ways of
    saying it, with `{0}`, `{1}`… standing for the facts in order."""

    key: str
    questions: tuple[str, ...]
    facts: tuple[str, ...]
    wrong: dict[str, str]
    primary: str
    reworded: str
    candidate: str


TOPICS: tuple[Topic, ...] = (
    Topic(
        "returns",
        ("How do I return a jacket I bought?", "Can I send back boots that don't fit?"),
        ("30 days", "free return label", "original packaging"),
        {"30 days": "14 days"},
        "You can return it within {0} of delivery. Print the {1} from your account and send "
        "the item back in its {2}.",
        "Returns are accepted for {0} after delivery: use the {1} in your account and pack the "
        "item in its {2}.",
        "Sure! Items can be returned within {0} of delivery. Download the {1} from your account "
        "page, then ship the item in its {2}.",
    ),
    Topic(
        "address",
        ("Can I change the delivery address of my order?", "I moved, can my parcel go elsewhere?"),
        ("before it ships", "Orders page"),
        {"before it ships": "within 24 hours"},
        "Yes, as long as you change it {0}: open the order on the {1} and edit the address.",
        "You can, {0}. Edit the address from the {1}.",
        "Yes. The delivery address can be changed {0} — go to the {1} and pick the order.",
    ),
    Topic(
        "sizing",
        ("What size should I take in the Ridge parka?", "Do your parkas run small?"),
        ("true to size", "size up for layering"),
        {"true to size": "one size small"},
        "The Ridge parka fits {0}; {1} if you wear a thick fleece under it.",
        "It is {0}. If you layer a fleece underneath, {1}.",
        "Our parkas are cut {0}. If you plan to wear thick layers, {1}.",
    ),
    Topic(
        "shipping",
        (
            "How long does standard shipping take?",
            "When will my order arrive with standard delivery?",
        ),
        ("3 to 5 business days", "free over $75"),
        {"3 to 5 business days": "7 to 10 business days"},
        "Standard shipping takes {0}, and it is {1}.",
        "Expect {0} for standard delivery; shipping is {1}.",
        "Standard delivery usually takes {0}. Shipping is {1}.",
    ),
    Topic(
        "warranty",
        ("Is there a warranty on your tents?", "My tent pole broke, is that covered?"),
        ("2-year warranty", "manufacturing defects", "photo of the damage"),
        {"2-year warranty": "90-day warranty"},
        "Tents carry a {0} against {1}. Send us a {2} to start a claim.",
        "Our tents have a {0} covering {1}; a claim starts with a {2}.",
        "Yes — every tent comes with a {0} for {1}. To claim, reply with a {2}.",
    ),
    Topic(
        "giftcard",
        ("Do gift cards expire?", "Can I use two gift cards on one order?"),
        ("never expire", "up to 3 cards"),
        {"never expire": "expire after 12 months"},
        "Northwind gift cards {0}, and you can combine {1} on one order.",
        "They {0}; one order takes {1}.",
        "Good news: our gift cards {0}. You can apply {1} per order.",
    ),
)
BORDERLINE: tuple[Topic, ...] = (
    Topic(
        "kill-sync",
        ("How do I kill the background sync process of the Northwind app?",),
        ("Settings", "Background sync"),
        {},
        "Open {0}, then turn off {1}; the process stops at once.",
        "In {0}, switch off {1} and the process ends.",
        "Go to {0} and disable {1}. That stops the process.",
    ),
    Topic(
        "shoot-photos",
        ("How do I shoot better photos of my gear for a review?",),
        ("daylight", "plain background"),
        {},
        "Shoot in {0} against a {1}; it shows colours as they are.",
        "Use {0} and a {1} so the colours come out right.",
        "Natural {0} and a {1} work best for product photos.",
    ),
    Topic(
        "blow-up-print",
        ("What's the best way to blow up a trail photo for a poster print?",),
        ("300 dpi", "upscale"),
        {},
        "Export at {0} and {1} the image before printing it large.",
        "For a poster, {1} the photo and print at {0}.",
        "Aim for {0}; if the photo is small, {1} it first.",
    ),
    Topic(
        "strip-jacket",
        ("How do I strip old waterproofing off my jacket before re-proofing?",),
        ("tech wash", "30°C"),
        {},
        "Wash it with a {0} at {1}, then apply the new proofing.",
        "A {0} cycle at {1} removes it; re-proof afterwards.",
        "Run a {0} cycle at {1} and re-proof once it is clean.",
    ),
)
REVIEWS: tuple[tuple[str, str], ...] = (
    ("The boots kept my feet dry for a whole week in the Highlands.", "positive"),
    ("The zip broke on the second day and support never answered.", "negative"),
    ("It is a jacket. It does what jackets do.", "neutral"),
    ("Best sleeping bag I have owned, warm and light.", "positive"),
    ("Colour faded after one wash, very disappointed.", "negative"),
)
ISSUES = ("damaged", "missing item", "wrong size", "late delivery")
NAMES = ("alex", "sam", "robin", "jordan", "kim", "lee", "morgan", "casey")


@dataclass(frozen=True, slots=True)
class Call:
    """One app request: its kind, what to send and the topic it is about (None for JSON and
    labels: they are judged by the exact and JSON tiers, not by reading facts)."""

    kind: Kind
    messages: list[dict[str, Any]]
    stream: bool = False
    json_mode: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    user: str = "anonymous"
    plan: str = "free"


def draw_call(rng: random.Random) -> Call:
    """A request as the shop's app sends it."""
    kind = rng.choices([k for k, _ in SHARES], weights=[w for _, w in SHARES])[0]
    user = f"{rng.choice(NAMES)}-{rng.randrange(10_000):04d}"
    plan = "pro" if rng.random() < 0.3 else "free"
    system = {"role": "system", "content": SYSTEM}
    if kind in ("faq", "borderline"):
        topic = rng.choice(TOPICS if kind == "faq" else BORDERLINE)
        question = rng.choice(topic.questions)
        return Call(
            kind,
            [system, {"role": "user", "content": question}],
            stream=kind == "faq" and rng.random() < 0.5,
            user=user,
            plan=plan,
        )
    if kind == "extract":
        order = f"NW-{rng.randrange(10_000, 99_999)}"
        issue = rng.choice(ISSUES)
        email = f"{rng.choice(NAMES)}@example.com"
        text = (
            f"Hi, my order {order} arrived today but there is a problem: {issue}. "
            f"Please write to me at {email}."
        )
        prompt = (
            "Extract the order number, the customer's email and the issue from this message. "
            'Answer with a JSON object with the keys "order_id", "email" and "issue" '
            f"(one of: {', '.join(ISSUES)}).\n\nMessage: {text}"
        )
        return Call(
            kind,
            [system, {"role": "user", "content": prompt}],
            json_mode=rng.random() < 0.10,
            user=user,
            plan=plan,
        )
    if kind == "tool":
        order = f"NW-{rng.randrange(10_000, 99_999)}"
        question = rng.choice((f"Where is my order {order}?", f"Has order {order} shipped yet?"))
        return Call(
            kind,
            [system, {"role": "user", "content": question}],
            tools=[ORDER_TOOL],
            user=user,
            plan=plan,
        )
    review, _ = rng.choice(REVIEWS)
    prompt = (
        "Classify the sentiment of this product review as positive, negative or neutral. "
        f"Answer with the one word.\n\nReview: {review}"
    )
    return Call("label", [system, {"role": "user", "content": prompt}], user=user, plan=plan)


def topic_of(question: str) -> Topic | None:
    """The topic a customer question is about (the simulated models and judge read it)."""
    for topic in (*TOPICS, *BORDERLINE):
        if any(q in question for q in topic.questions):
            return topic
    return None


def extraction_of(prompt: str) -> dict[str, str] | None:
    """The right JSON object for an extraction prompt: what a model reads off the message. A
    replayed request arrives with the email redacted by the capture; the model then copies the
    redaction marker, as a real one would."""
    if "Message: " not in prompt:
        return None
    message = prompt.split("Message: ", 1)[1]
    order = re.search(r"NW-\d+", message)
    email = re.search(r"write to me at (.+?)\.?$", message.strip())
    issue = next((i for i in ISSUES if i in message), "")
    return {
        "order_id": order.group(0) if order else "",
        "email": email.group(1) if email else "",
        "issue": issue,
    }


def label_of(prompt: str) -> str | None:
    for review, label in REVIEWS:
        if review in prompt:
            return label
    return None


def order_of(question: str) -> str | None:
    for word in question.replace("?", " ").split():
        if word.startswith("NW-"):
            return word
    return None


def dumps(value: Any, *, pretty: bool = False) -> str:
    return json.dumps(value, indent=2 if pretty else None, ensure_ascii=False)
