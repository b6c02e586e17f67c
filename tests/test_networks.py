"""The networks (skvae/_networks.py): the MLPs, the Gaussian encoder, and what
a NetworkConfig decides: standardization, the data a loss accepts and the
decoder's link."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from skvae import AutoencoderTransformer, VAETransformer
from skvae._networks import GaussianEncoder, NetworkConfig, mlp
from skvae._objective import PAIR_NOISE, encoder_input


def test_mlp_puts_an_activation_between_each_two_layers():
    layers = list(mlp([5, 8, 4, 2], "tanh", torch.Generator().manual_seed(0)))
    assert [type(layer) for layer in layers] == [
        nn.Linear,
        nn.Tanh,
        nn.Linear,
        nn.Tanh,
        nn.Linear,
    ]
    assert [(layer.in_features, layer.out_features) for layer in layers[::2]] == [
        (5, 8),
        (8, 4),
        (4, 2),
    ]


def test_gaussian_encoder_without_hidden_layers_is_linear_with_bounded_logvar():
    encoder = GaussianEncoder([5, 2], "relu", torch.Generator().manual_seed(0))
    assert isinstance(encoder.body, nn.Identity)
    # Far out-of-distribution inputs: exp(logvar) must stay finite.
    mean, logvar = encoder(torch.full((3, 5), 1e30))
    assert mean.shape == logvar.shape == (3, 2)
    assert logvar.min() >= encoder.LOGVAR_MIN and logvar.max() <= encoder.LOGVAR_MAX
    assert torch.isfinite(logvar.exp()).all()


def test_network_config_defaults_standardize_and_decode_unchanged():
    config = NetworkConfig(
        n_features=5, hidden_layer_sizes=(8,), n_components=2, activation="relu"
    )
    assert config.probability_setting is None and config.standardizes
    config.check_data(np.array([[-1e9, 1e9]]))  # any finite data
    output = torch.randn(4, 5)
    assert torch.equal(config.decoder_mean(output), output)
    with pytest.raises(NotImplementedError):
        config.build(None)


@pytest.mark.slow
@pytest.mark.parametrize(
    "Estimator, params",
    [
        (VAETransformer, {"likelihood": "bernoulli"}),
        (AutoencoderTransformer, {"loss": "binary_crossentropy"}),
    ],
    ids=["bernoulli", "binary_crossentropy"],
)
def test_unit_interval_loss_decodes_inside_unit_interval(Estimator, params, digits):
    X = digits[0]
    # A Bernoulli VAE needs ~30 epochs to leave its collapsed start.
    max_iter = 40 if Estimator is VAETransformer else 20
    est = Estimator(max_iter=max_iter, random_state=0, **params).fit(X)
    X_back = est.inverse_transform(est.transform(X))
    assert X_back.min() >= 0 and X_back.max() <= 1
    # Codes far outside the training range still decode to probabilities.
    far = est.inverse_transform(np.full((2, 2), 1e3))
    assert far.min() >= 0 and far.max() <= 1
    # It has learned something: better than predicting the mean digit.
    assert np.mean((X_back - X) ** 2) < 0.9 * np.mean((X - X.mean(0)) ** 2)
    # Probabilities are not standardized.
    np.testing.assert_array_equal(est.mean_, np.zeros(64))
    assert est.scale_ == 1.0
    if isinstance(est, VAETransformer):
        samples = est.sample(20, random_state=0)
        assert samples.min() >= 0 and samples.max() <= 1
        assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.parametrize("input_noise", [0.0, 0.5])
def test_the_encoder_reads_noise_only_while_training(input_noise):
    config = NetworkConfig(
        n_features=3,
        hidden_layer_sizes=(4,),
        n_components=2,
        activation="relu",
        input_noise=input_noise,
    )
    x = torch.ones(1000, 3)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    noise = config.input_noise
    assert encoder_input(x, noise, generator, training=False) is x
    noisy = encoder_input(x, noise, generator, training=True)
    if not input_noise:
        # Nothing drawn: the generator's later draws are a noiseless model's.
        assert noisy is x
        assert torch.equal(generator.get_state(), state)
    else:
        assert torch.std(noisy - x).item() == pytest.approx(input_noise, rel=0.05)
        assert torch.mean(noisy - x).abs().item() < 0.05


def test_pairs_noise_is_each_pairs_spacing_and_only_on_paired_batches():
    config = NetworkConfig(
        n_features=50,
        hidden_layer_sizes=(4,),
        n_components=2,
        activation="relu",
        input_noise="pairs",
    )
    rows = torch.zeros(4, 50)
    # Each row's neighbour is 0.1, 1, 10 or 100 away in every feature.
    spacing = torch.tensor([0.1, 1.0, 10.0, 100.0])
    x = torch.cat([rows, rows + spacing[:, None]])
    generator = torch.Generator().manual_seed(0)
    pairs = config.input_noise
    assert encoder_input(x, pairs, generator, training=False, paired=True) is x
    assert encoder_input(x, pairs, generator, training=True, paired=False) is x
    noise = encoder_input(x, pairs, generator, training=True, paired=True) - x
    expected = PAIR_NOISE * spacing.repeat(2)
    np.testing.assert_allclose(noise.std(dim=1) / expected, 1, atol=0.3)


@pytest.mark.parametrize(
    ("n_features", "input_noise", "neighbor_weight", "expected"),
    [
        (16, "auto", "auto", "pairs"),
        (15, "auto", "auto", 0.0),
        (16, "auto", 0, 0.0),  # no term, no pairs to jitter
        (200, "auto", "auto", 0.0),  # "auto" has no term there
        (200, "auto", 0.5, "pairs"),
        (64, 0.3, "auto", 0.3),
        (64, 0, "auto", 0),
    ],
)
def test_auto_noise_jitters_pairs_of_data_of_16_features_or_more(
    n_features, input_noise, neighbor_weight, expected
):
    X = np.random.default_rng(0).normal(size=(40, n_features))
    vae = VAETransformer(
        input_noise=input_noise,
        neighbor_weight=neighbor_weight,
        max_iter=1,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning):
        vae.fit(X)
    assert vae._config.input_noise == expected


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_input_noise_trains_on_noisy_inputs_and_infers_without(Estimator):
    X = np.random.default_rng(0).normal(size=(200, 5))
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    clean = Estimator(**params).fit(X)
    noisy = Estimator(**params, input_noise=1.0).fit(X)
    assert clean.loss_curve_ != noisy.loss_curve_
    # transform, inverse_transform (and score_samples) read the clean input.
    np.testing.assert_array_equal(noisy.transform(X), noisy.transform(X))
    codes = noisy.transform(X)
    np.testing.assert_array_equal(
        noisy.inverse_transform(codes), noisy.inverse_transform(codes)
    )
