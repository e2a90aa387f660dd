"""Model validation: closed forms, conservation laws and stylised facts (``distsim validate-model``)."""
