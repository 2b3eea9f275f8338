package io.vsplade.testnode;

import java.util.List;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.transport.Netty4Plugin;

/** OpenSearch 2.x: Node's protected constructor takes the plugin classes themselves. */
final class LineNode extends Node {
    private LineNode(Environment env) {
        super(env, List.of(Netty4Plugin.class, MapperExtrasPlugin.class, CommonAnalysisPlugin.class,
            PainlessPlugin.class), true);
    }

    static Node create(Environment env) {
        return new LineNode(env);
    }
}
