"""The model zoo: the Small CNN Zoo network, its flat layout, and the two zoo sources
(:mod:`causalxai.zoo.smallcnnzoo`: download the real zoo; :mod:`causalxai.zoo.train`:
train many zoo networks at once)."""
