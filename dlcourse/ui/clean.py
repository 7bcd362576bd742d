"""The data cleaner's page: a class of one split at a time, hardest images first, each to keep, delete or
relabel; then apply (and undo). Components and wiring only: dlcourse/clean/ does the work."""
from __future__ import annotations

import base64
import html
import io
from typing import Any

import gradio as gr
from PIL import Image

from ..clean.apply import DELETE, KEEP
from ..clean.session import BOTH, PAGE_SIZE, CleanSession
from .common import shows_errors
from .space import LAUNCH_OPTIONS, queued

TITLE = "Clean the data"
COLUMNS = 6  # cards in a row
INTRO = (
    "As in lesson 2: the model was trained *before* cleaning, so the images it finds hardest come first "
    "(highest loss). Choose keep, delete or the right class for each, then **Apply**: `cleaned.csv` in the "
    "data folder gets the cleaned labels (`train.py --data PATH --csv cleaned.csv`); with *move the files* "
    "deleted images go into `removed/` beside the data folder and relabelled ones into their class folder. "
    "**Undo** puts back what the last apply changed."
)
# Thumbnails fill their box, a 28x28 digit crisp; a card keeps its width when a page has fewer than a row of them.
CSS = (".clean-thumb { height: 140px; } .clean-thumb img { width: 100%; height: 100%; object-fit: contain;"
       " image-rendering: pixelated; } .clean-caption p { font-size: 0.85em; margin: 0; overflow-wrap: anywhere; }"
       f" .clean-card {{ flex: 0 0 calc((100% - {COLUMNS - 1} * var(--layout-gap)) / {COLUMNS}) !important; }}")
SPLIT_CHOICES = [("Training", "train"), ("Validation", "valid"), ("Both", BOTH)]


def card_html(row: dict, thumbnail: Image.Image | None) -> str:
    """A card's picture and what it says about it. The thumbnail travels inside the HTML (a data: URL): a page of
    twelve is one answer, not twelve more requests."""
    name = html.escape(row["file"].rsplit("/", 1)[-1])
    if thumbnail is None:
        picture = '<div class="clean-thumb"></div>'
    else:
        buffer = io.BytesIO()
        thumbnail.save(buffer, format="PNG")
        picture = (f'<div class="clean-thumb"><img alt="{name}" '
                   f'src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"></div>')
    if "loss" not in row:
        return f'{picture}<p><b>cannot be read</b>: {html.escape(row["problem"])}<br><code>{name}</code></p>'
    return (f'{picture}<p><b>{html.escape(row["label"])}</b> → {html.escape(row["predicted"])} '
            f'({row["probability"]:.0%})<br>loss {row["loss"]:.2f} · {row["split"]} · <code>{name}</code></p>')


def action_choices(classes: list[str]) -> list[tuple[str, str]]:
    """Keep, delete, or a class (its own class too, which keeps it: every card has the same menu, so that a
    new page only sets the cards' values)."""
    return [(KEEP, KEEP), (DELETE, DELETE)] + [(f"→ {name}", name) for name in classes]


def decisions_markdown(decisions: dict[str, str]) -> str:
    changes = {file: action for file, action in decisions.items() if action != KEEP}
    deleted = sum(action == DELETE for action in changes.values())
    return f"{len(changes)} change(s) chosen, not applied yet: {deleted} to delete, {len(changes) - deleted} to relabel."


def page(session: CleanSession) -> gr.Blocks:
    """The cleaner's page for one session (data folder and model)."""
    with gr.Blocks(title=TITLE) as blocks:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        gr.Markdown(f"**Data**: {session.data.description} · **model**: `{session.classifier.meta.arch}`, "
                    f"{len(session.classes)} classes", elem_id="clean-about")
        with gr.Row():
            split = gr.Radio(SPLIT_CHOICES, value="train", label="Split", elem_id="clean-split")
            label = gr.Dropdown(choices=[], label="Class (images in it)", elem_id="clean-class")
            with gr.Column(min_width=260):
                with gr.Row():
                    previous = gr.Button("◀ Previous", elem_id="clean-previous", min_width=80)
                    number = gr.Number(1, precision=0, label="Page", elem_id="clean-page", min_width=80)
                    following = gr.Button("Next ▶", elem_id="clean-next", min_width=80)
                pages = gr.Markdown("", elem_id="clean-pages")
        cards, captions, choices = [], [], []
        for start in range(0, PAGE_SIZE, COLUMNS):
            with gr.Row(equal_height=True):
                for slot in range(start, start + COLUMNS):
                    with gr.Column(visible=False, min_width=120, elem_id=f"clean-card-{slot}", elem_classes="clean-card") as card:
                        captions.append(gr.HTML("", elem_classes="clean-caption", elem_id=f"clean-caption-{slot}"))
                        choices.append(gr.Dropdown(action_choices(session.classes), value=KEEP, show_label=False,
                                                   container=False, elem_id=f"clean-choice-{slot}"))
                    cards.append(card)
        with gr.Row():
            move = gr.Checkbox(False, label="move the files too", elem_id="clean-move")
            apply_button = gr.Button("Apply", variant="primary", elem_id="clean-apply")
            undo_button = gr.Button("Undo the last apply", elem_id="clean-undo")
        status = gr.Markdown("", elem_id="clean-status")
        decisions = gr.State({})  # file -> action, for the images shown so far
        shown = gr.State([])  # (file, label) of the cards, in order

        def show(split_value: str, label_value: str, page_number: Any, chosen: dict) -> list[Any]:
            rows, current, count = session.page(split_value, label_value, page_number)
            thumbnails = session.thumbnails(rows)
            updates: list[Any] = []
            for slot in range(PAGE_SIZE):
                row = rows[slot] if slot < len(rows) else None
                updates.append(gr.Column(visible=row is not None))
            for slot in range(PAGE_SIZE):
                updates.append(card_html(rows[slot], thumbnails[slot]) if slot < len(rows) else "")
            for slot in range(PAGE_SIZE):
                updates.append(chosen.get(rows[slot]["file"], KEEP) if slot < len(rows) else KEEP)
            total = len(session.rows(split_value, label_value))
            updates += [current, f"page {current} of {count} · {total:,} images", [(row["file"], row["label"]) for row in rows]]
            return updates

        page_outputs = [*cards, *captions, *choices, number, pages, shown]
        view = [split, label, number, decisions]

        @shows_errors
        def start(split_value: str, chosen: dict, progress=gr.Progress(track_tqdm=True)) -> list[Any]:
            progress(0, desc="ranking the images by loss")
            session.ranking()
            menu = session.class_choices(split_value)
            first = menu[0][1]
            return [gr.Dropdown(choices=menu, value=first), *show(split_value, first, 1, chosen)]

        def change_split(split_value: str, label_value: str, chosen: dict) -> list[Any]:
            menu = session.class_choices(split_value)
            kept = label_value if label_value in [value for _, value in menu] else menu[0][1]
            return [gr.Dropdown(choices=menu, value=kept), *show(split_value, kept, 1, chosen)]

        def choose(slot: int):
            def record(action: str, cards: list, chosen: dict) -> tuple[dict, str]:
                if slot < len(cards):
                    file, given = cards[slot]
                    chosen = {**chosen, file: KEEP if action == given else action}  # its own class keeps it
                return chosen, decisions_markdown(chosen)
            return record

        @shows_errors
        def apply_chosen(move_files: bool, split_value: str, label_value: str, chosen: dict) -> list[Any]:
            outcome = session.apply(chosen, move_files)
            if move_files:  # carried out on the files: nothing is left to choose about them
                chosen = {}
            menu = session.class_choices(split_value)
            return [f"Applied: {outcome.summary()}", chosen, gr.Dropdown(choices=menu, value=label_value),
                    *show(split_value, label_value, 1, chosen)]

        @shows_errors
        def undo_last(split_value: str, label_value: str, chosen: dict) -> list[Any]:
            outcome = session.undo()
            menu = session.class_choices(split_value)
            kept = label_value if label_value in [value for _, value in menu] else menu[0][1]
            return [f"Undone: {outcome.summary()}", gr.Dropdown(choices=menu, value=kept),
                    *show(split_value, kept, 1, chosen)]

        blocks.load(start, [split, decisions], [label, *page_outputs], api_visibility="private")
        # Paging and choosing a class answer without the queue: quick handlers, and a click should not wait behind another.
        browse = dict(api_visibility="private", queue=False)
        split.input(change_split, [split, label, decisions], [label, *page_outputs], **browse)
        label.select(lambda s, c, d: show(s, c, 1, d), [split, label, decisions], page_outputs, **browse)
        number.submit(show, view, page_outputs, **browse)
        previous.click(lambda s, c, n, d: show(s, c, (n or 1) - 1, d), view, page_outputs, **browse)
        following.click(lambda s, c, n, d: show(s, c, (n or 1) + 1, d), view, page_outputs, **browse)
        for slot, choice in enumerate(choices):
            choice.input(choose(slot), [choice, shown, decisions], [decisions, status], api_visibility="private",
                         show_progress="hidden", queue=False)
        apply_button.click(apply_chosen, [move, split, label, decisions], [status, decisions, label, *page_outputs],
                           api_visibility="private")
        undo_button.click(undo_last, [split, label, decisions], [status, label, *page_outputs], api_visibility="private")
    return blocks


def launch(session: CleanSession, port: int, block: bool = True) -> gr.Blocks:
    """Serve the page on 127.0.0.1:`port` with the Space's queue and look; with `block`, until interrupted."""
    options = LAUNCH_OPTIONS | {"css": LAUNCH_OPTIONS["css"] + CSS, "mcp_server": False}
    blocks = queued(page(session))
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=not block, quiet=not block, **options)
    return blocks
