"""The evaluation half of the product: what runs offline, around the shared decision core
(:mod:`sdo.domain`), beside the live half (:mod:`sdo.stream`, :mod:`sdo.console`).

- :mod:`~sdo.evaluation.simulate`: deterministic synthetic pilot logs (``sdo simulate``)
- :mod:`~sdo.evaluation.police_uk`: police.uk records as a log (``sdo import police-uk``)
- :mod:`~sdo.evaluation.replay`: reading logs, and publishing them to Kafka (``sdo replay``)
- :mod:`~sdo.evaluation.evaluate`: policies run over a log and compared (``sdo evaluate``)
- :mod:`~sdo.evaluation.intervals`: the bootstrap 95% intervals of the comparison
- :mod:`~sdo.evaluation.report`: the HTML report of an evaluation
"""
