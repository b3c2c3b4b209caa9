"""Tools for filter authors, behind `edged filter` (edged.cli.filter).

scaffold  `filter new`: a project from an SDK's template folder
runner    `filter run`: one filter over JSON lines, no broker
golden    `filter test`: a run compared with the expected JSON lines
inspect   `filter inspect`: a module's shape, and whether a node would take it
"""
