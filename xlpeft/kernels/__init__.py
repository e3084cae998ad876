"""Written-out forward steps for one backbone family at a time (a cached prompt step faster than transformers'
own), each checked against transformers in the tests."""
