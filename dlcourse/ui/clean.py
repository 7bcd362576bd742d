"""The data cleaner's page: a class of one split at a time, hardest images first, each to keep, delete or
relabel; then apply (and undo). Components and wiring only: dlcourse/clean/ does the work."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..clean.apply import DELETE, KEEP
from ..clean.session import BOTH, PAGE_SIZE, CleanSession
from .common import Picture, shows_errors
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
CSS = (".clean-thumb img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"
       " .clean-caption p { font-size: 0.85em; margin: 0; overflow-wrap: anywhere; }"
       f" .clean-card {{ flex: 0 0 calc((100% - {COLUMNS - 1} * var(--layout-gap)) / {COLUMNS}) !important; }}")
SPLIT_CHOICES = [("Training", "train"), ("Validation", "valid"), ("Both", BOTH)]


def caption(row: dict) -> str:
    """What a card says about its image."""
    name = row["file"].rsplit("/", 1)[-1]
    if "loss" not in row:
        return f"**cannot be read**: {row['problem']}<br>`{name}`"
    return (f"**{row['label']}** → {row['predicted']} ({row['probability']:.0%})<br>"
            f"loss {row['loss']:.2f} · {row['split']} · `{name}`")


def action_choices(session: CleanSession, row: dict) -> list[tuple[str, str]]:
    if "loss" not in row:
        return [(KEEP, KEEP), (DELETE, DELETE)]
    return [(KEEP, KEEP), (DELETE, DELETE)] + [(f"→ {name}", name) for name in session.classes if name != row["label"]]


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
        cards, pictures, captions, choices = [], [], [], []
        for start in range(0, PAGE_SIZE, COLUMNS):
            with gr.Row(equal_height=True):
                for slot in range(start, start + COLUMNS):
                    with gr.Column(visible=False, min_width=120, elem_id=f"clean-card-{slot}", elem_classes="clean-card") as card:
                        pictures.append(Picture(None, type="pil", format="png", image_mode=None, interactive=False,
                                                show_label=False, height=140, buttons=[], elem_classes="clean-thumb",
                                                elem_id=f"clean-image-{slot}"))
                        captions.append(gr.Markdown("", elem_classes="clean-caption", elem_id=f"clean-caption-{slot}"))
                        choices.append(gr.Dropdown([KEEP], value=KEEP, show_label=False, container=False,
                                                   elem_id=f"clean-choice-{slot}"))
                    cards.append(card)
        with gr.Row():
            move = gr.Checkbox(False, label="move the files too", elem_id="clean-move")
            apply_button = gr.Button("Apply", variant="primary", elem_id="clean-apply")
            undo_button = gr.Button("Undo the last apply", elem_id="clean-undo")
        status = gr.Markdown("", elem_id="clean-status")
        decisions = gr.State({})  # file -> action, for the images shown so far
        shown = gr.State([])  # the files in the cards, in order

        def show(split_value: str, label_value: str, page_number: Any, chosen: dict) -> list[Any]:
            rows, current, count = session.page(split_value, label_value, page_number)
            thumbnails = session.thumbnails(rows)
            updates: list[Any] = []
            for slot in range(PAGE_SIZE):
                row = rows[slot] if slot < len(rows) else None
                updates.append(gr.Column(visible=row is not None))
            for slot in range(PAGE_SIZE):
                updates.append(thumbnails[slot] if slot < len(rows) else None)
            for slot in range(PAGE_SIZE):
                updates.append(caption(rows[slot]) if slot < len(rows) else "")
            for slot in range(PAGE_SIZE):
                row = rows[slot] if slot < len(rows) else None
                updates.append(gr.Dropdown(choices=action_choices(session, row), value=chosen.get(row["file"], KEEP))
                               if row else gr.Dropdown(choices=[KEEP], value=KEEP))
            total = len(session.rows(split_value, label_value))
            updates += [current, f"page {current} of {count} · {total:,} images", [row["file"] for row in rows]]
            return updates

        page_outputs = [*cards, *pictures, *captions, *choices, number, pages, shown]
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
            def record(action: str, files: list[str], chosen: dict) -> tuple[dict, str]:
                if slot < len(files):
                    chosen = {**chosen, files[slot]: action}
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
        split.input(change_split, [split, label, decisions], [label, *page_outputs], api_visibility="private")
        label.input(lambda s, c, d: show(s, c, 1, d), [split, label, decisions], page_outputs, api_visibility="private")
        number.submit(show, view, page_outputs, api_visibility="private")
        previous.click(lambda s, c, n, d: show(s, c, (n or 1) - 1, d), view, page_outputs, api_visibility="private")
        following.click(lambda s, c, n, d: show(s, c, (n or 1) + 1, d), view, page_outputs, api_visibility="private")
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
