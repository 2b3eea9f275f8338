package io.vsplade.testnode;

import org.opensearch.env.Environment;
import org.opensearch.node.Node;

/** Plugin nodes (plugins/plugins.tsv), both lines: no classpath plugins at all. Node's public
 *  constructor loads the modules and plugins from path.home/modules and path.home/plugins, as a
 *  distribution does, which is what lets plugins extend each other and the modules. */
final class LineNode {
    private LineNode() { }

    static Node create(Environment env) {
        return new Node(env);
    }
}
