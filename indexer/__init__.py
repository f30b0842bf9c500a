"""Image decoding with limits, hashing, face blurring, and the LanceDB gallery. Usable without Scrapy."""
