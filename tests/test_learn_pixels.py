"""Chapter 4 learns on the pixels: the book's pieces, training on the project's MNIST 3s and 7s, the limits,
and the /learn_pixels endpoint through gradio_client and plain HTTP."""
from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest
import torch
from conftest import serving
from gradio_client import Client
from gradio_client.exceptions import AppError

from dlcourse.pixels import learn as lp
from dlcourse.errors import BadInput
from dlcourse.ui import learn_pixels as ui


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as app.py serves


@pytest.fixture(scope="module")
def data(baseline) -> lp.ThreesAndSevens:
    return lp.data_for(baseline)


def run(data, **settings) -> lp.Training:
    return lp.train(data, lp.settings(train_images=len(data.train_x), **settings))


# ---------------------------------------------------------------- the book's pieces


def test_mnist_loss_is_the_books_distance_from_the_target_after_a_sigmoid():
    probabilities = torch.tensor([0.9, 0.4, 0.2])  # the book's example: targets 3, 7, 3
    loss = lp.mnist_loss(torch.logit(probabilities), torch.tensor([1.0, 0.0, 1.0]))
    assert float(loss) == pytest.approx((0.1 + 0.4 + 0.8) / 3, rel=1e-6)
    # a right answer made more confident lowers the loss; its gradient never vanishes as accuracy's does
    predictions = torch.tensor([0.5, -0.5], requires_grad=True)
    lp.mnist_loss(predictions, torch.tensor([1.0, 0.0])).backward()
    assert predictions.grad[0] < 0 < predictions.grad[1]


def test_batch_accuracy_counts_the_side_of_one_half():
    predictions = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    assert lp.batch_accuracy(predictions, torch.tensor([[1.0], [0.0], [0.0], [1.0]])) == 0.5


def test_basic_optim_steps_against_the_gradient_and_forgets_it():
    weight = torch.tensor([1.0, -2.0], requires_grad=True)
    (weight * torch.tensor([3.0, 4.0])).sum().backward()
    optimiser = lp.BasicOptim([weight], lr=0.5)
    optimiser.step()
    assert weight.tolist() == [1.0 - 1.5, -2.0 - 2.0]
    optimiser.zero_grad()
    assert weight.grad is None


def test_starting_weights_are_pytorchs_default_or_the_books_first_try():
    default = lp.init_params("simple net", False, torch.Generator().manual_seed(0))
    assert [tuple(p.shape) for p in default] == [(784, 30), (30,), (30, 1), (1,)]
    assert all(p.requires_grad for p in default)
    first, second = default[0].detach(), default[2].detach()
    assert float(first.abs().max()) <= 1 / math.sqrt(784) and float(second.abs().max()) <= 1 / math.sqrt(30)
    book = lp.init_params("linear", True, torch.Generator().manual_seed(0))
    assert float(book[0].detach().std()) == pytest.approx(1.0, abs=0.1)


# ---------------------------------------------------------------- the data and the baseline


def test_data_are_the_baselines_threes_and_sevens(data, baseline):
    assert data.train_split == baseline.training_data["split"] == "train-5k"
    assert data.train_x.shape == (1000, 784) and data.valid_x.shape == (2038, 784)
    assert float(data.train_y.sum()) == 500  # 500 3s, then 500 7s, as the book stacks them
    assert data.train_y[:500].eq(1).all() and data.train_y[500:].eq(0).all()
    assert 0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1
    assert lp.baseline_accuracy(baseline) == pytest.approx(0.9529, abs=1e-4)


# ---------------------------------------------------------------- learning


def test_linear_model_beats_the_baseline_in_20_epochs(data, baseline):
    training = run(data, model="linear", lr=1.0, epochs=20, batch_size=256, seed=42)
    assert training.start_accuracy < 0.8  # it starts knowing nothing
    assert len(training.valid_accuracy) == len(training.train_loss) == 20
    assert training.valid_accuracy[-1] > 0.965 > lp.baseline_accuracy(baseline)
    assert training.train_loss[-1] < training.train_loss[0] / 3


def test_simple_net_beats_the_baseline_in_40_epochs(data, baseline):
    training = run(data, model="simple net", lr=1.0, epochs=40, batch_size=256, seed=42)
    assert training.valid_accuracy[-1] > 0.97 > lp.baseline_accuracy(baseline)
    assert training.first_layer().shape == (30, 28, 28)


def test_the_books_first_try_learns_worse(data):
    default = run(data, epochs=20, seed=42)
    book = run(data, epochs=20, seed=42, book_start=True)
    assert book.valid_accuracy[-1] < default.valid_accuracy[-1] - 0.02


def test_same_seed_same_result_and_another_seed_another(data):
    first, again = run(data, epochs=3, seed=7), run(data, epochs=3, seed=7)
    assert first.valid_accuracy == again.valid_accuracy and first.train_loss == again.train_loss
    assert all(torch.equal(a, b) for a, b in zip(first.params, again.params))
    assert run(data, epochs=3, seed=8).train_loss != first.train_loss


def test_a_batch_at_a_time_adds_up_to_an_epoch(data):
    stepped = lp.Training.start(data, lp.settings(batch_size=300, seed=3, train_images=1000))
    assert stepped.batches_per_epoch == 4
    for batch in range(1, 4):
        stepped.step()
        assert (stepped.epoch, stepped.batch) == (0, batch)
    stepped.train_epoch()  # the rest of the epoch: one batch of 100
    assert (stepped.epoch, stepped.batch) == (1, 0) and len(stepped.batch_losses) == 4
    whole = run(data, batch_size=300, seed=3, epochs=1)
    assert stepped.valid_accuracy == whole.valid_accuracy and stepped.train_loss == whole.train_loss


def test_pictures_of_the_first_layer(data):
    training = run(data, epochs=2)
    picture = lp.layer_picture(training).convert("RGB")
    assert picture.size == (224, 224)
    weights = training.first_layer()[0]
    row, col = np.unravel_index(int(weights.argmax()), (28, 28))
    assert picture.getpixel((int(col) * 8 + 4, int(row) * 8 + 4)) == (255, 0, 0)  # the strongest "3" pixel: red
    net = run(data, model="simple net", epochs=1)
    sheet = lp.layer_picture(net)
    assert sheet.size == (2 * (6 * 28 + 5), 2 * (5 * 28 + 4))  # 6 x 5 features, 1 px apart, each pixel 2 x 2
    assert sheet.convert("RGB").getpixel((2 * 28, 0)) == (255, 255, 255)  # the gap: white
    # each feature is turned by its sign in the second layer: red still pushes towards "3"
    features, second = net.first_layer(), net.params[2].detach().view(-1)
    for i in (int(second.argmin()), int(second.argmax())):
        row, col = np.unravel_index(int(features[i].argmax()), (28, 28))  # the feature's most positive pixel
        x, y = 2 * ((i % 6) * 29 + int(col)), 2 * ((i // 6) * 29 + int(row))
        assert sheet.convert("RGB").getpixel((x, y)) == ((255, 0, 0) if second[i] > 0 else (0, 0, 255)), i


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("field, value, note", [
    ("lr", 0, "learning rate 0 cannot move the weights downhill: using 0.0001."),
    ("lr", 1e6, "learning rate 1e+06 is outside [0.0001, 10]: using 10."),
    ("epochs", 0, "epochs 0 is outside [1, 200]: using 1."),
    ("epochs", 10**6, "epochs 1,000,000 is outside [1, 200]: using 200."),
    ("batch_size", 0, "batch size 0 is outside [1, 1,000]: using 1."),
])
def test_out_of_range_values_are_clamped_with_a_note(field, value, note):
    assert note in lp.settings(**{field: value}, train_images=1000).notes


def test_too_many_batches_in_all_cut_the_epochs():
    settings = lp.settings(epochs=200, batch_size=1, train_images=1000)
    assert settings.epochs == 10 and "more than 10,000 batches: using 10 epochs." in settings.notes[-1]


@pytest.mark.parametrize("field, value, message", [
    ("lr", float("nan"), "learning rate must be a finite number, not nan"),
    ("epochs", "many", "epochs must be a number, not 'many'"),
    ("batch_size", None, "batch size is missing"),
    ("model", "resnet", "Unknown model 'resnet'"),
    ("book_start", "yes", "book_start must be true or false"),
])
def test_nonsense_is_refused_with_a_clear_message(field, value, message):
    with pytest.raises(BadInput, match=message):
        lp.settings(**{field: value}, train_images=1000)


# ---------------------------------------------------------------- the endpoint


@pytest.fixture(scope="module")
def learn_url(baseline):
    with serving(ui.section(baseline)) as url:
        yield url


@pytest.fixture(scope="module")
def learn_client(learn_url) -> Client:
    return Client(learn_url, verbose=False)


def test_the_endpoint_is_documented(learn_client, learn_url):
    api = learn_client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/learn_pixels"}  # the section's own events stay private
    endpoint = api["named_endpoints"]["/learn_pixels"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == [
        "model", "lr", "epochs", "batch_size", "seed", "book_start"]
    assert "mnist_loss" in endpoint["description"]
    tools = {tool["name"]: tool for tool in httpx.get(learn_url + "gradio_api/mcp/schema").json()}
    described = {name: schema["description"] for name, schema in tools["learn_pixels"]["inputSchema"]["properties"].items()}
    assert set(described) == {"model", "lr", "epochs", "batch_size", "seed", "book_start"} and all(described.values())
    assert "784->30" in described["model"] and "clamped" in described["lr"]


def test_learn_pixels_through_gradio_client(learn_client, data):
    result = learn_client.predict(model="linear", lr=1, epochs=20, batch_size=256, seed=42, api_name="/learn_pixels")
    expected = run(data, model="linear", lr=1, epochs=20, batch_size=256, seed=42)
    assert result["valid_accuracy"] == pytest.approx(expected.valid_accuracy, abs=1e-6)
    assert result["train_loss"] == pytest.approx(expected.train_loss, abs=1e-6)
    assert result["baseline_accuracy"] == pytest.approx(0.952895)
    assert result["beats_baseline"] and result["valid_accuracy"][-1] > 0.965
    assert (result["train_images"], result["valid_images"]) == (1000, 2038)
    again = learn_client.predict(model="linear", lr=1, epochs=20, batch_size=256, seed=42, api_name="/learn_pixels")
    assert again == result  # same seed, same result


def test_the_endpoint_clamps_and_refuses_as_the_others_do(learn_client, learn_url):
    clamped = learn_client.predict(model="simple net", lr=0, epochs=10**6, batch_size=0, seed=1,
                                   api_name="/learn_pixels")
    assert len(clamped["notes"]) == 4 and clamped["settings"]["epochs"] == 10 and clamped["settings"]["batch_size"] == 1
    assert len(clamped["valid_accuracy"]) == 10
    with pytest.raises(AppError, match="Unknown model 'svm'"):
        learn_client.predict(model="svm", api_name="/learn_pixels")
    # gradio_client cannot send NaN; other clients can (Python's json writes it)
    body = json.dumps({"data": ["linear", float("nan"), 1, 256, 42, False]})
    event = httpx.post(learn_url + "gradio_api/call/learn_pixels", content=body,
                       headers={"Content-Type": "application/json"}).json()["event_id"]
    stream = httpx.get(f"{learn_url}gradio_api/call/learn_pixels/{event}", timeout=30).text
    assert "event: error" in stream and "learning rate must be a finite number" in stream
    assert learn_client.predict(epochs=1, api_name="/learn_pixels")["valid_accuracy"]  # still serving
