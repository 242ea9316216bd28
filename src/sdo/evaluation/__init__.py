"""The evaluation half of the product: what runs offline, around the shared decision core
(:mod:`sdo.domain`), beside the live half (:mod:`sdo.stream`, :mod:`sdo.console`).

- :mod:`~sdo.evaluation.simulate`: deterministic synthetic pilot logs (``sdo simulate``),
  with :mod:`~sdo.evaluation.roster` (who is on duty) and :mod:`~sdo.evaluation.calls`
- :mod:`~sdo.evaluation.police_uk`: police.uk records as a log (``sdo import police-uk``)
- :mod:`~sdo.evaluation.replay`: reading logs, and publishing them to Kafka (``sdo replay``)
- :mod:`~sdo.evaluation.command`: ``sdo evaluate``, the command
- :mod:`~sdo.evaluation.evaluate`: the passes, a policy each, over a log
- :mod:`~sdo.evaluation.figures`: what a pass measures, and policies compared
- :mod:`~sdo.evaluation.closed_loop`: a policy's recommendations carried out
- :mod:`~sdo.evaluation.timing`: delays, travel and time on scene (simulation and loop)
- :mod:`~sdo.evaluation.breakdown`, :mod:`~sdo.evaluation.across`: by place; across logs
- :mod:`~sdo.evaluation.provenance`: where a log came from
- :mod:`~sdo.evaluation.intervals`: the bootstrap 95% intervals of the comparison
- :mod:`~sdo.evaluation.summary`, :mod:`~sdo.evaluation.report`: the HTML report
"""
