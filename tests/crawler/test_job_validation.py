"""Job values checked whole, before any work: seeds, delays, domains."""

import math

import pytest

from crawler.job import CrawlJob, JobError, Politeness, validate_seed


@pytest.mark.parametrize(
    ("seed", "crawled"),
    [
        ("https://example.org/a?b=1", "https://example.org/a?b=1"),  # unchanged
        ("http://bücher.example/fotos/", "http://xn--bcher-kva.example/fotos/"),
        ("http://user:secret@Example.org:8080/x", "http://example.org:8080/x"),
        ("http://[::1]:8000/", "http://[::1]:8000/"),
    ],
)
def test_seeds_as_crawled(seed, crawled):
    assert validate_seed(seed)[0] == crawled


def test_credentials_are_stripped_and_the_warning_hides_the_password(caplog):
    job = CrawlJob(seeds=("http://user:secret@example.org/",)).validate()
    assert job.seeds == ("http://example.org/",)
    assert "secret" not in " ".join(job.spider_args().values()) + str(job.settings())
    assert "user:***@example.org" in caplog.text and "secret" not in caplog.text
    job.validate()
    assert caplog.text.count("credentials removed") == 1  # once, not on every validation


@pytest.mark.parametrize(
    ("job", "words"),
    [
        (CrawlJob(seeds=("http://example.org:99999/",)), "port must be between 1 and 65535"),
        (CrawlJob(seeds=("http://example.org:0/",)), "port must be between 1 and 65535"),
        (CrawlJob(seeds=("http://☃.example/",)), "not a valid internationalised domain name"),
        (CrawlJob(seeds=("http://example.org/",), politeness=Politeness(delay=math.inf)), "politeness.delay"),
        (CrawlJob(seeds=("http://example.org/",), politeness=Politeness(delay=math.nan)), "politeness.delay"),
        (CrawlJob(seeds=("http://example.org/",), politeness=Politeness(delay=-0.5)), "politeness.delay"),
        (CrawlJob(seeds=("http://example.org/",), allowed_domains=("http://cdn.example.org/",)), "not a host name"),
    ],
)
def test_refused_values(job, words):
    with pytest.raises(JobError) as info:
        job.validate()
    assert words in str(info.value)


def test_idn_allowed_domain_converted():
    job = CrawlJob(seeds=("http://example.org/",), allowed_domains=("bücher.example",)).validate()
    assert job.allowed_domains == ("xn--bcher-kva.example",)
