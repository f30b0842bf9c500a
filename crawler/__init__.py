"""The Scrapy project: spiders, the middlewares that ask robots_policy, and the hand-off to indexer."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gallery-crawler")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

PROJECT_URL = "https://github.com/gallery-crawler/gallery-crawler"
USER_AGENT_TOKEN = "gallery-crawler"
USER_AGENT = f"{USER_AGENT_TOKEN}/{__version__} (+{PROJECT_URL})"
